//! A little demo data so a newcomer's `./dev up` shows something: a dozen users who know each
//! other and have written a few posts. The million-user generator is `agora seed users`.

use crate::domain::{NewUser, Registration};
use crate::error::SocialError;
use crate::rules::Social;

pub const DEMO_PASSWORD: &str = "demo-password";

const PEOPLE: &[(&str, &str, &str, &str)] = &[
    ("Анна", "Смирнова", "1992-04-17", "Москва"),
    ("Иван", "Петров", "1988-11-02", "Санкт-Петербург"),
    ("Мария", "Кузнецова", "1995-07-23", "Казань"),
    ("Алексей", "Соколов", "1979-01-30", "Новосибирск"),
    ("Екатерина", "Попова", "2000-09-12", "Екатеринбург"),
    ("Дмитрий", "Лебедев", "1985-05-05", "Нижний Новгород"),
    ("Ольга", "Козлова", "1990-12-24", "Самара"),
    ("Сергей", "Новиков", "1983-03-14", "Ростов-на-Дону"),
    ("Татьяна", "Морозова", "1997-06-08", "Краснодар"),
    ("Константин", "Осипов", "1975-10-19", "Воронеж"),
    ("Наталья", "Волкова", "1993-08-27", "Пермь"),
    ("Михаил", "Фёдоров", "1989-02-11", "Томск"),
];

const POSTS: &[&str] = &[
    "Первый день на agora. Привет всем!",
    "Кто-нибудь был на выставке в Третьяковке на этой неделе?",
    "Собираю команду на субботний забег в парке, присоединяйтесь.",
    "Дочитал «Мастера и Маргариту» в третий раз — каждый раз как впервые.",
    "Сегодня наконец-то настроил индексы, запросы летают.",
    "Посоветуйте хороший кофе в центре города.",
];

/// What the demo load did.
pub struct DemoSummary {
    pub created: bool,
    pub first_user_id: i64,
    pub users: usize,
}

/// Loads the demo unless the database already has users; never touches existing data.
pub async fn load(service: &Social) -> Result<DemoSummary, SocialError> {
    let db = service.pool().get().await?;
    if let Some(row) = db
        .query_opt(
            "SELECT min(id), count(*) FROM users HAVING count(*) > 0",
            &[],
        )
        .await?
    {
        let count: i64 = row.get(1);
        return Ok(DemoSummary {
            created: false,
            first_user_id: row.get(0),
            users: count as usize,
        });
    }
    drop(db);
    let mut ids = Vec::with_capacity(PEOPLE.len());
    for (first, second, birthdate, city) in PEOPLE {
        let user = NewUser::parse(Registration {
            first_name: Some((*first).into()),
            second_name: Some((*second).into()),
            birthdate: Some((*birthdate).into()),
            biography: Some("Демо-пользователь agora".into()),
            city: Some((*city).into()),
            password: Some(DEMO_PASSWORD.into()),
        })?;
        ids.push(service.register(user).await?);
    }
    // A ring with shortcuts: everyone has a few friends, nobody is isolated.
    for (i, &user) in ids.iter().enumerate() {
        for step in [1, 2, 5] {
            service
                .add_friend(user, ids[(i + step) % ids.len()])
                .await?;
        }
    }
    for (i, &author) in ids.iter().enumerate() {
        for text in POSTS.iter().skip(i % 3).step_by(2) {
            service.create_post(author, text).await?;
        }
    }
    Ok(DemoSummary {
        created: true,
        first_user_id: ids[0],
        users: ids.len(),
    })
}
